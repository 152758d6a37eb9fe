"""Secrets out of sight: values under secret-looking keys are replaced before anything is
rendered, written to the audit log or logged. The keys are RELAY["SECRET_KEYS"] (substrings,
case-insensitive)."""

from __future__ import annotations

from typing import Any

from queues.conf import relay_settings

MASK = "••••••"


def is_secret_key(key: str) -> bool:
    key = key.lower().replace("-", "_")
    return any(word in key for word in relay_settings().SECRET_KEYS)


def mask(value: Any) -> Any:
    """A copy of `value` with every secret-keyed value replaced by MASK, at any depth."""
    if isinstance(value, dict):
        return {k: MASK if isinstance(k, str) and is_secret_key(k) else mask(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask(v) for v in value]
    return value


def unmask(edited: Any, original: Any) -> Any:
    """Edited arguments back from a form that showed masked values: wherever the operator
    left MASK under a secret key, the original value is kept."""
    if isinstance(edited, dict) and isinstance(original, dict):
        return {k: (original[k] if v == MASK and k in original and is_secret_key(k)
                    else unmask(v, original.get(k)))
                for k, v in edited.items()}
    if isinstance(edited, list) and isinstance(original, list):
        return [unmask(v, original[i] if i < len(original) else None)
                for i, v in enumerate(edited)]
    return edited


def mask_filter(params: Any) -> Any:
    """A job filter's parameters with the values of `arg=args.<secret key>=value` masked."""
    if not isinstance(params, dict):
        return params

    def one(raw: Any) -> Any:
        path, sep, _ = str(raw).partition("=")
        if sep and is_secret_key(path.rsplit(".", 1)[-1]):
            return f"{path}={MASK}"
        return raw

    out = dict(params)
    if "arg" in out:
        values = out["arg"] if isinstance(out["arg"], list) else [out["arg"]]
        out["arg"] = [one(v) for v in values]
    return out
