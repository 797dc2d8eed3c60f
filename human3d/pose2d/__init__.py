"""2D human pose: the heatmap codec (:mod:`human3d.pose2d.heatmaps`)."""
