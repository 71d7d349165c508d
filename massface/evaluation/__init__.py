"""The field's evaluation protocols: pair verification, IJB-B/C, retrieval, plots and reports.

Names are loaded lazily: ``from massface.evaluation import evaluate_pairs`` imports only numpy and
``verification``; torch, faiss, matplotlib and onnxruntime are imported by the functions that need them.
"""

from massface._lazy import lazy_exports

_EXPORTS = {
    "PairEvaluation": "verification",
    "evaluate_pairs": "verification",
    "evaluate_distances": "verification",
    "pair_distances": "verification",
    "pool_templates": "ijb",
    "verify_templates": "ijb",
    "score_template_pairs": "ijb",
    "identify": "ijb",
    "roc_curve": "ijb",
    "tpr_at_fpr": "ijb",
    "read_ijb": "ijb",
    "retrieval_metrics": "retrieval",
    "plot_distance_distribution": "plots",
    "plot_distance_distributions": "plots",
    "plot_roc": "plots",
    "evaluate_bin": "runner",
    "evaluate_bins": "runner",
    "evaluate_lfw_pairs": "runner",
    "evaluate_images": "runner",
    "load_model": "runner",
    "is_torchscript": "runner",
    "embed_images": "runner",
    "write_report": "report",
    "format_table": "report",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
