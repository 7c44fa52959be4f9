"""TFX's StatisticsGen, Transform and Evaluator, reading their tf.Examples a file at a time."""
