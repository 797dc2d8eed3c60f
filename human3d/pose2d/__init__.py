"""2D human pose from heatmaps.

* :mod:`~human3d.pose2d.heatmaps`: the codec (unbiased Gaussian targets + weights; argmax, DARK, soft-argmax);
* :mod:`~human3d.pose2d.networks`: SimpleBaseline and a CPM-style multi-stage network (own torch), shipped weights;
* :mod:`~human3d.pose2d.crops` / :mod:`~human3d.pose2d.data`: person-centred crops and augmentation, person pools;
* :mod:`~human3d.pose2d.metrics`: PCK (bbox / torso), PCKh, OKS and COCO OKS AP;
* :mod:`~human3d.pose2d.train`: ``Pose2DTrainer`` on the training core, trained on :mod:`human3d.synth`.
"""
