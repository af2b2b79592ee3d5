#!/usr/bin/env bash
# Fetch the data files of three Debian packages without root and without installing R or Java:
#   dataset-fashion-mnist  -> fashion-mnist, fashion-mnist-10k (IDX files)
#   r-cran-mlbench         -> splice (DNA.rda)
#   weka                   -> credit-g, diabetes (ARFF examples)
# `apt-get download` fetches the .deb files into a temporary folder, `dpkg-deb -x` unpacks them there,
# and only the needed files are copied under ${XMODAL_DATA:-$HOME/.cache/xmodal/debian}, keeping their
# system paths (e.g. $XMODAL_DATA/usr/share/doc/weka/examples/diabetes.arff), which is where xmodal's
# loaders look after the system paths. Idempotent: files already present (installed system-wide or
# fetched before) are not fetched again.
#
# Usage: scripts/fetch_debian_data.sh        exit 0 when every file is present afterwards, 1 otherwise.
set -euo pipefail

DEST=${XMODAL_DATA:-$HOME/.cache/xmodal/debian}

# package:path[|alternative path] — the loaders accept the first one found, under / then under $DEST
FILES=(
  "dataset-fashion-mnist:/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
  "dataset-fashion-mnist:/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz"
  "dataset-fashion-mnist:/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
  "dataset-fashion-mnist:/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"
  "r-cran-mlbench:/usr/lib/R/site-library/mlbench/data/DNA.rda"
  "weka:/usr/share/doc/weka/examples/credit-g.arff|/usr/share/doc/weka/examples/credit-g.arff.gz"
  "weka:/usr/share/doc/weka/examples/diabetes.arff|/usr/share/doc/weka/examples/diabetes.arff.gz"
)

present() {  # present PATH[|PATH...]: true if any alternative exists under / or $DEST
  local alt
  IFS='|' read -ra alts <<<"$1"
  for alt in "${alts[@]}"; do
    [ -f "$alt" ] || [ -f "$DEST$alt" ] && return 0
  done
  return 1
}

missing_pkgs=()
for entry in "${FILES[@]}"; do
  pkg=${entry%%:*}
  if ! present "${entry#*:}"; then
    [[ " ${missing_pkgs[*]-} " == *" $pkg "* ]] || missing_pkgs+=("$pkg")
  fi
done

if [ ${#missing_pkgs[@]} -eq 0 ]; then
  echo "Debian data already present (system paths or $DEST)"
  exit 0
fi

for tool in apt-get dpkg-deb; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "fetch_debian_data: $tool is not available (not a Debian/Ubuntu system?); cannot fetch: ${missing_pkgs[*]}" >&2
    exit 1
  fi
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"  # apt's download user (_apt) may then write here too; harmless if not
echo "fetching ${missing_pkgs[*]} with apt-get download ..."
if ! (cd "$tmp" && apt-get download -q "${missing_pkgs[@]}" 2> >(grep -v "unsandboxed" >&2)); then
  echo "fetch_debian_data: apt-get download failed (no apt package lists? run 'apt-get update' as root once)" >&2
  exit 1
fi
for deb in "$tmp"/*.deb; do
  dpkg-deb -x "$deb" "$tmp/root"
done

status=0
for entry in "${FILES[@]}"; do
  spec=${entry#*:}
  present "$spec" && continue
  IFS='|' read -ra alts <<<"$spec"
  copied=0
  for alt in "${alts[@]}"; do
    if [ -f "$tmp/root$alt" ]; then
      mkdir -p "$(dirname "$DEST$alt")"
      cp "$tmp/root$alt" "$DEST$alt.part" && mv -f "$DEST$alt.part" "$DEST$alt"
      copied=1
      break
    fi
  done
  if [ $copied -eq 0 ]; then
    echo "fetch_debian_data: ${entry%%:*} does not contain ${alts[0]}" >&2
    status=1
  fi
done
[ $status -eq 0 ] && echo "Debian data unpacked under $DEST"
exit $status
