"""Training: losses (Eq. 10), the temperature schedule of Eq. 8, the Keras task with its train_step."""
