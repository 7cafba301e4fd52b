"""The VW text lines scoring wrote before it read DSJSON (``bandit.log.vwjson``), frozen
here as the reference that live features still hash the same: models trained before the
change must keep their meaning."""

from collections.abc import Mapping, Sequence


def _ns_text(ns: Mapping[str, Mapping[str, float]]) -> str:
    parts = []
    for name, feats in ns.items():
        kinds = {type(v).__name__ for v in feats.values() if isinstance(v, bool) or not isinstance(v, int | float)}
        assert not kinds, (f"namespace {name!r} holds {kinds}: the former text lines held numbers only, so live "
                           "features changed kind and models trained before no longer apply to them as they did")
        body = " ".join(f if v == 1.0 else f"{f}:{v:.6g}" for f, v in feats.items())
        parts.append(f"|{name} {body}")
    return " ".join(parts)


def former_text_lines(shared: Mapping, actions: Sequence[Mapping],
                      label: tuple[int, float, float] | None = None) -> list[str]:
    """VW ``--cb_explore_adf`` text: a shared line and one line per action; ``label`` is
    ``(action_index, cost, probability)``."""
    lines = ["shared " + _ns_text(shared)]
    for idx, a in enumerate(actions):
        prefix = f"0:{label[1]:.6g}:{label[2]:.6g} " if label is not None and label[0] == idx else ""
        lines.append(prefix + _ns_text(a))
    return lines


def hashed(examples: list) -> list[dict[str, list[tuple[int, float]]]]:
    """Each parsed VW example as ``{namespace index: sorted [(feature hash, value)]}``."""
    out = []
    for ex in examples:
        spaces = {}
        for i in range(ex.num_namespaces()):
            ns = ex.namespace(i)
            ns = ns if isinstance(ns, str) else chr(ns)
            spaces[ns] = sorted((ex.feature(ns, j), ex.feature_weight(ns, j)) for j in range(ex.num_features_in(ns)))
        out.append(spaces)
    return out
