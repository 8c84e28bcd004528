"""Training, evaluation and int8 export of the detector's models (TensorFlow/Keras)."""
