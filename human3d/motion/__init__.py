"""Motion: reading motion capture and putting it on a body model. A layer above :mod:`human3d.body`.

* :mod:`human3d.motion.bvh`: BVH reader, the format-independent ``Motion`` container, forward kinematics;
* :mod:`human3d.motion.deepmimic`: DeepMimic humanoid3d JSON motions as a ``Motion``;
* :mod:`human3d.motion.retarget`: retargeting (BVH rigs, CMU exp-maps, DeepMimic) onto Anny;
* :mod:`human3d.motion.mocap`: the mocap corpus (clip registry with licences, hold-out clips) and the pose-prior
  dataset built from it.

Dependencies point down only: ``motion`` uses ``body``, ``geometry``, ``data.paths`` and ``errors``; nothing in
``body`` or ``data`` imports ``motion``. Submodules are imported explicitly (``from human3d.motion.bvh import ...``).
"""
