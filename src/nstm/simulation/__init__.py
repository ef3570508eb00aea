"""Simulated moving samples with ground truth: phantoms, motion, noise, image formation.

Shared by every imaging system, in 2D ``(H, W)`` and 3D ``(Z, H, W)``:

* :mod:`.phantoms`: thin-sample absorption/phase maps (:func:`~.phantoms.make_phantom`),
  non-negative fluorescence / intensity densities (:func:`~.phantoms.make_density`,
  :func:`~.phantoms.make_beads`) and colour scenes (:func:`~.phantoms.make_color`).
* :mod:`.motion`: displacement fields in pixels (pull convention: the scene at time ``t`` and
  pixel ``r`` is the canonical scene at ``r + d(t, r)``) and warping.
* :mod:`.noise`: shot noise of normalized images, read noise, and camera counts.

The submodules are imported on demand, so that importing :mod:`nstm.simulation` stays cheap.
"""
