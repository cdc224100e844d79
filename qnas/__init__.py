"""The shared core both searches build on: data, spaces and architectures, models, objectives, parents, training,
deployment targets.

Nothing here imports ``enas`` or ``ecomp_tf`` (README, "How the code is laid out").
"""
import quantize  # noqa: F401  (selects legacy Keras before TensorFlow loads)
