"""TFJobTrainer: the standard Trainer whose training runs as a multi-worker TFJob on Kubernetes."""
