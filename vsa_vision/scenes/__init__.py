"""Synthetic scenes: the attribute schema, a Pillow renderer, datasets and a LightningDataModule.

    >>> from vsa_vision.scenes import default_schema, sample_scenes, render_scene
    >>> schema = default_schema()
    >>> scenes = sample_scenes(schema, 100, seed=0)   # list of {attribute name: value label}
    >>> render_scene(schema, scenes[0]).size          # PIL RGB image
    (64, 64)

This layer knows nothing of codebooks or decomposers.
"""

from .render import SHAPE_POLYGONS, Renderer, contact_sheet, render_scene
from .schema import (
    ROLES,
    SPLITS,
    Attribute,
    Schema,
    default_schema,
    load_schema,
    sample_indices,
    sample_scenes,
)
from .shapes import FILLS, SHAPES

__all__ = [
    "Attribute", "Schema", "ROLES", "SHAPES", "FILLS", "SPLITS", "default_schema", "load_schema", "sample_indices",
    "sample_scenes", "Renderer", "render_scene", "contact_sheet", "SHAPE_POLYGONS",
]

from .datamodule import SceneDataModule  # noqa: E402
from .dataset import RenderedScenes, SceneShards, generate_dataset  # noqa: E402

__all__ += ["RenderedScenes", "SceneShards", "generate_dataset", "SceneDataModule"]
