"""Synthetic humans with exact labels: :class:`SynthGenerator` renders batches, :func:`write_dataset` writes a
COCO keypoint dataset (images + JSON)."""

from human3d.synth.generator import PART_NAMES, SynthBatch, SynthConfig, SynthGenerator, mask_boxes

__all__ = ["SynthConfig", "SynthBatch", "SynthGenerator", "PART_NAMES", "mask_boxes"]
