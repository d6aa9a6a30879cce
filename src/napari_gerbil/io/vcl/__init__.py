"""VCL training datasets: the HDF5 layout vocalocator reads and writes.

Layout (see docs/formats.md):

- ``/audio`` (total_samples, n_channels): all calls concatenated on axis 0
  (older files: ``/vocalizations``).
- ``/length_idx`` (n_calls + 1,) int: call i is ``audio[length_idx[i]:length_idx[i+1]]``
  (older files: ``/len_idx``).
- ``/locations`` (n_calls, n_nodes, 2|3) or (n_calls, n_animals, n_nodes, 2|3) in mm,
  origin at the arena floor centre. Optional (unlabelled calls).
- ``/node_names`` (n_nodes,) bytes.

Our additions, never required on read and always written: root attributes
``napari_gerbil_format = "vcl"``, ``sample_rate_hz``, ``arena_dims_mm``,
``mic_positions_mm``, ``scenario``, ``provenance`` (JSON) and the dataset
``/stimulus_class`` (n_calls,) of strings.

The package: :mod:`~napari_gerbil.io.vcl.names` (format marker and name aliases),
:mod:`~napari_gerbil.io.vcl.read` (:class:`VCLDataset`), :mod:`~napari_gerbil.io.vcl.write`
(:class:`VCLWriter`, :func:`write_vcl`, :func:`merge_vcl`) and
:mod:`~napari_gerbil.io.vcl.validate` (:func:`validate_vcl`). Import from
``napari_gerbil.io.vcl``.
"""

from napari_gerbil.io.compat import check_compatible
from napari_gerbil.io.vcl.names import (
    ARENA_DIMS_ATTRS,
    AUDIO_NAMES,
    FORMAT_NAME,
    FORMAT_VERSION,
    LENGTH_IDX_NAMES,
    SAMPLE_RATE_ATTRS,
)
from napari_gerbil.io.vcl.read import VCLDataset
from napari_gerbil.io.vcl.validate import (
    LOCATION_TOLERANCE_MM,
    SCAN_CHUNK_SAMPLES,
    check_locations,
    validate_vcl,
)
from napari_gerbil.io.vcl.write import (
    AUDIO_CHUNK_SAMPLES,
    CallIdentity,
    VCLWriter,
    call_identities,
    merge_vcl,
    write_vcl,
)

__all__ = [
    "ARENA_DIMS_ATTRS",
    "AUDIO_CHUNK_SAMPLES",
    "AUDIO_NAMES",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "LENGTH_IDX_NAMES",
    "LOCATION_TOLERANCE_MM",
    "SAMPLE_RATE_ATTRS",
    "SCAN_CHUNK_SAMPLES",
    "CallIdentity",
    "VCLDataset",
    "VCLWriter",
    "call_identities",
    "check_compatible",
    "merge_vcl",
    "check_locations",
    "validate_vcl",
    "write_vcl",
]
