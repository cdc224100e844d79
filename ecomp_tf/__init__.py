"""EComp ported to Keras: evolutionary compression of a float parent with the t-SNE similarity loss, and rank reduction."""
import qnas  # noqa: F401  (selects legacy Keras before TensorFlow loads)
