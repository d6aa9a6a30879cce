"""Data layer: VCL datasets, session files, arena geometry, audio/video/track readers."""
