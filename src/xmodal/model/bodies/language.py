"""Language encoders (BERT, RoBERTa, MPNet, MiniLM, XLM-R, …) fed embedder tokens as ``inputs_embeds``.

The model's own embedding layer (word + position + token-type embeddings and LayerNorm) is
replaced by a pass-through, as in ORCA's code: the embedder ``f`` adds its own positional
embedding, initialised from the body's pretrained one, and its own LayerNorm, initialised from the
body's embedding LayerNorm.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from xmodal.errors import XmodalError
from xmodal.model.bodies.base import Body, SourceTokens, register_family

# model types whose position ids start after the padding index (fairseq convention)
_OFFSET_TYPES = {"roberta", "xlm-roberta", "camembert", "mpnet", "xlm-roberta-xl", "data2vec-text"}
# model types whose tokenizer is byte-level BPE (GPT-2 style)
_BYTE_BPE_TYPES = {"roberta", "data2vec-text"}


class _PassThrough(nn.Module):
    """Stands in for the embedding layer: returns ``inputs_embeds`` unchanged."""

    def forward(self, inputs_embeds: torch.Tensor | None = None, **_: object) -> torch.Tensor:
        return inputs_embeds


@register_family(
    "language",
    ("bert", "roberta", "xlm-roberta", "camembert", "mpnet", "electra", "data2vec-text", "xlm-roberta-xl"),
)
class LanguageBody(Body):
    """A bidirectional text encoder; tokens ``(N, T, D)`` → features ``(N, T, D)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        cfg = model.config
        emb = model.embeddings
        offset = (cfg.pad_token_id + 1) if cfg.model_type in _OFFSET_TYPES and cfg.pad_token_id is not None else 0
        pos = emb.position_embeddings.weight.detach()[offset:].clone()
        token_type = getattr(emb, "token_type_embeddings", None)
        if token_type is not None:  # BERT adds the type-0 embedding to every token
            pos = pos + token_type.weight.detach()[0]
        # kept out of the state dict: only used to initialise the embedder
        self._pretrained_position = pos
        self._pretrained_norm = [emb.LayerNorm] if hasattr(emb, "LayerNorm") else []
        self._source_embeddings = [emb]  # a list keeps it out of the state dict
        model.embeddings = _PassThrough()
        if getattr(model, "pooler", None) is not None:
            model.pooler = None
        self.in_width = self.out_width = int(cfg.hidden_size)
        self.max_tokens = int(pos.shape[0])

    def forward(self, tokens: torch.Tensor, grid: tuple[int, ...], mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            return self.model(inputs_embeds=tokens).last_hidden_state
        return self.model(inputs_embeds=tokens, attention_mask=mask.long()).last_hidden_state

    def position_embeddings(self, grid: tuple[int, ...]) -> torch.Tensor | None:
        return self._pretrained_position

    def _tokenizer(self) -> Any:
        """The body's tokenizer, loaded once from :attr:`tokenizer_location` (offline when it is a folder)."""
        cached = self.__dict__.get("_source_tokenizer")
        if cached is not None:
            return cached
        if self.tokenizer_location is None:
            raise XmodalError(
                "source features need a pretrained language body with a tokenizer (e.g. 'minilm-l6'); "
                "this body was built from a config only and has none"
            )
        from transformers import AutoTokenizer

        # byte-level BPE (RoBERTa) needs add_prefix_space=True for pre-split words
        kw = {"add_prefix_space": True} if self.model.config.model_type in _BYTE_BPE_TYPES else {}
        try:
            tok = AutoTokenizer.from_pretrained(self.tokenizer_location, **kw)
        except Exception as exc:
            raise XmodalError(
                f"source features need the body's tokenizer, which cannot be loaded from "
                f"{self.tokenizer_location} ({type(exc).__name__}: {exc})"
            ) from exc
        self.__dict__["_source_tokenizer"] = tok  # a plain attribute, not a module or buffer
        return tok

    def _embed_words(self, sentences: list, max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Pre-split sentences → (tokens ``(b, T, D)``, attention mask ``(b, T)``) by the pretrained embedding."""
        tok = self._tokenizer()
        emb = self._source_embeddings[0]
        device = next(self.parameters()).device
        emb.to(device).eval()
        words = [list(map(str, s)) for s in sentences]
        enc = tok(words, is_split_into_words=True, truncation=True, max_length=max_length,
                  padding=True, return_tensors="pt").to(device)
        kw = {"token_type_ids": enc["token_type_ids"]} if "token_type_ids" in enc else {}
        return emb(input_ids=enc["input_ids"], **kw), enc["attention_mask"]

    @torch.no_grad()
    def source_tokens(self, proxy: Any, batch_size: int = 64, max_length: int | None = None) -> SourceTokens:
        """Sentences → tokenizer → pretrained embedding layer: tokens ``(n, T, D)`` right-padded to the
        longest sentence (at most ``max_length`` sub-word tokens, default :attr:`max_tokens`) and a mask."""
        if proxy.modality != "text":
            raise XmodalError(f"a language body embeds text proxies; {proxy.name!r} is {proxy.modality}")
        length = min(int(max_length or self.max_tokens), self.max_tokens)
        parts = [self._embed_words(proxy.inputs[i : i + batch_size], length)
                 for i in range(0, len(proxy.inputs), batch_size)]
        if not parts:
            raise XmodalError(f"proxy {proxy.name!r} is empty")
        T = max(h.shape[1] for h, _ in parts)
        tokens = torch.cat([F.pad(h.float(), (0, 0, 0, T - h.shape[1])) for h, _ in parts])
        mask = torch.cat([F.pad(m, (0, T - m.shape[1])) for _, m in parts])
        return SourceTokens(tokens, mask, (T,))

    @torch.no_grad()
    def source_features(self, proxy: Any, batch_size: int = 64) -> torch.Tensor:
        """Sentences → tokenizer → the body's original embedding layer → mask-weighted mean: ``(n, D)``.

        The embedding layer is the pretrained one (word + position + token-type embeddings and
        LayerNorm), kept aside when the body was built; words are pre-split, truncated to
        :attr:`max_tokens` sub-word tokens including the special ones.
        """
        if proxy.modality != "text":
            raise XmodalError(f"a language body embeds text proxies; {proxy.name!r} is {proxy.modality}")
        out = []
        for i in range(0, len(proxy.inputs), batch_size):
            h, m = self._embed_words(proxy.inputs[i : i + batch_size], self.max_tokens)
            mask = m.unsqueeze(-1).to(h.dtype)
            out.append(((h * mask).sum(1) / mask.sum(1).clamp_min(1)).float().cpu())
        if not out:
            return torch.zeros(0, self.in_width)
        return torch.cat(out)

    def embedding_norm(self) -> nn.LayerNorm | None:
        return self._pretrained_norm[0] if self._pretrained_norm else None
