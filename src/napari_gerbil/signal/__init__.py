"""Signal processing on long recordings: spectrogram windows, call detection, segments."""
