"""The top of training/: the train runner (local or Ray Train DDP) and the end-to-end training demo."""
