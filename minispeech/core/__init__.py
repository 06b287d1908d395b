"""The spine every task stands on: config, the model file format, SpeechModel, optim."""
