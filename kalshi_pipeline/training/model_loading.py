"""Loading a model of the history: the challenger, the champion, and whether the
champion still loads (:mod:`kalshi_pipeline.training.promotion` decides with them); and a
model to evaluate with its parent (:func:`load_with_parent`).

A model loads when its file and its lineage (``model.json``) beside it are readable and
it was trained on the views' feature layout; otherwise :class:`PromotionError` says why.
:func:`champion_warning` is the same question asked without loading the model, for
``kalshi-pipeline models``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from kalshi_pipeline.market.features import FEATURE_LAYOUT, FEATURE_LAYOUT_VERSION
from kalshi_pipeline.training.algorithms import ALGORITHM_CLASSES
from kalshi_pipeline.training.lineage import LINEAGE_FILE, read_lineage
from kalshi_pipeline.training.registry import PromotionError, RegistryRecord


def load_checked_model(model_path: Path):
    """The SB3 model at ``model_path`` (with its lineage beside it), or PromotionError."""
    model_path = Path(model_path)
    if not model_path.is_file() or not (model_path.parent / LINEAGE_FILE).is_file():
        raise PromotionError(f"model {model_path}: the file or its {LINEAGE_FILE} is missing")
    try:
        lineage = read_lineage(model_path)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PromotionError(
            f"model {model_path}: its {LINEAGE_FILE} is unreadable: {exc}"
        ) from exc
    layout = (lineage.feature_layout, lineage.feature_layout_version)
    if layout != (FEATURE_LAYOUT, FEATURE_LAYOUT_VERSION):
        raise PromotionError(
            f"model {model_path} was trained on feature layout {layout[0]} v{layout[1]}, and "
            f"the views have {FEATURE_LAYOUT} v{FEATURE_LAYOUT_VERSION}"
        )
    try:
        return ALGORITHM_CLASSES[lineage.algorithm].load(model_path, device="cpu")
    except Exception as exc:
        raise PromotionError(f"model {model_path} does not load: {exc}") from exc


def load_with_parent(model_path: Path):
    """A model to evaluate: its lineage, the SB3 model, and a phase-3 model's parent (its
    phase-2 model) when that file is still there, else ``None``. A model of another
    feature layout than the views' is refused (ValueError)."""
    lineage = read_lineage(model_path)
    layout = (lineage.feature_layout, lineage.feature_layout_version)
    if layout != (FEATURE_LAYOUT, FEATURE_LAYOUT_VERSION):
        raise ValueError(f"model {model_path} was trained on feature layout {layout}")
    model = ALGORITHM_CLASSES[lineage.algorithm].load(model_path, device="cpu")
    parent = lineage.parent_model
    phase2 = (
        ALGORITHM_CLASSES[lineage.algorithm].load(parent, device="cpu")
        if lineage.phase == 3 and parent and Path(parent).exists()
        else None
    )
    return lineage, model, phase2


def champion_warning(record: RegistryRecord | None) -> str | None:
    """A warning when the champion's model file is gone, not a whole zip archive, or has
    no readable lineage beside it, so that the next promotion will find it lost (``None``
    when all is well). The model itself is not loaded."""
    if record is None:
        return None
    problem = _file_problem(Path(record.model_path))
    if problem is None:
        return None
    return (
        f"warning: champion {record.id}'s model file {record.model_path} {problem}: the next "
        "promotion records it as lost and judges its challenger against always-HOLD"
    )


def _file_problem(path: Path) -> str | None:
    if not path.is_file():
        return "is missing"
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()  # the first member whose checksum fails
    except (OSError, zipfile.BadZipFile) as exc:
        return f"is not a readable zip archive ({exc})"
    if damaged is not None:
        return f"is damaged (its member {damaged} fails its checksum)"
    try:
        read_lineage(path)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return f"has no readable {LINEAGE_FILE} beside it ({type(exc).__name__})"
    return None
