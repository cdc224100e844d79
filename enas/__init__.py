"""The ENAS controller search: strategies that propose architectures, the shared-weight supernet, the search loop."""
import qnas  # noqa: F401  (selects legacy Keras before TensorFlow loads)
