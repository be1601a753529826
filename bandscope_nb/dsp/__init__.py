"""Signal processing: spectrograms, masks, classical separators, metrics (numpy and librosa)."""
