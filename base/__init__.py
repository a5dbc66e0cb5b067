"""Base classes of the data loaders (base_data_loader) and the trainer (base_trainer).

Nothing is imported here, so that a data loader does not pull in the trainer (and TensorBoard)."""
