"""The field's data formats, verification sets, alignment, augmentation and SynthFaces.

Names are loaded lazily: ``from massface.data import RecordDataset`` imports only ``recordio``.
"""

from massface._lazy import lazy_exports

_EXPORTS = {
    "RecordDataset": "recordio",
    "write_records": "recordio",
    "TFRecordIndexDataset": "tfrecord",
    "write_tfrecords": "tfrecord",
    "FolderDataset": "folder",
    "JsonListDataset": "folder",
    "read_bin": "verification",
    "write_bin": "verification",
    "read_lfw_pairs": "verification",
    "read_pair_folders": "verification",
    "write_folder": "folder",
    "DataFormatError": "_errors",
    "DEFAULT_MAX_PIXELS": "_guard",
    "draw_occlusion": "occlusion",
    "OCCLUSION_KINDS": "occlusion",
    "open_dataset": "datasets",
    "DATASET_FORMATS": "datasets",
    "landmarks68_to_5": "align",
    "arcface_template": "align",
    "SyntheticOcclusion": "transforms",
    "SynthFaces": "synthetic",
    "align_face": "align",
    "build_train_transform": "transforms",
    "build_eval_transform": "transforms",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
