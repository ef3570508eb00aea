"""nstm: the neural space-time model for multi-shot computational imaging of moving samples.

Reconstruct a dynamic scene from raw frames taken one after another, without training data:
a motion network M(r, t) and a time-free scene network O(r) are fitted through the imaging
system's differentiable forward model, so the scene at time t is O(r + M(r, t)).

Main entry points: :func:`nstm.model.make_model`, :func:`nstm.training.fit`,
:func:`nstm.model.render_scenes`, the systems in :mod:`nstm.systems` and the ``nstm`` command.
"""

__version__ = "0.3.0"
