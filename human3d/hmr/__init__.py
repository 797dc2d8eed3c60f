"""Learned fitting: the trainer of learned gradient descent (:mod:`human3d.hmr.lgd_trainer`, ``LGDTrainer``; the
network and its use in SMPLify live in :mod:`human3d.fitting.lgd`)."""
