"""Physically simulated cage recordings: the project's built-in data.

- :mod:`~napari_gerbil.simulate.air`: ISO 9613-1 air absorption, speed of sound;
- :mod:`~napari_gerbil.simulate.acoustics`: image-source impulse responses of the cage
  (pyroomacoustics ShoeBox) with absorption presets and ultrasonic air absorption;
- :mod:`~napari_gerbil.simulate.rir_bank`: responses stored once per position, rendered
  with any stimulus on the fly;
- :mod:`~napari_gerbil.simulate.stimuli`: 18 stimulus classes (5 call types + noise x 3
  volumes);
- :mod:`~napari_gerbil.simulate.scenarios`: ``speaker``/``robot``/``animal`` VCL datasets
  and their shift variants;
- :mod:`~napari_gerbil.simulate.session`: multi-animal sessions with audio, video, poses,
  a session file and a separate ground-truth file.

Submodules are imported on use (pyroomacoustics and sleap-io load lazily).
"""
