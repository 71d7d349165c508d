"""The field's evaluation protocols: pair verification, IJB-B/C, retrieval, plots and reports.

Names are loaded lazily: ``from massface.evaluation import evaluate_pairs`` imports only numpy and
``verification``; torch, scikit-learn, faiss, matplotlib and onnxruntime are imported by the functions that need
them.

Modules:

=======================  ==================================================================================
``verification``         the 10-fold pair protocol (insightface's grid search, bit-exact; or exact search)
``roc``                  ROC (sklearn), AUC (sklearn), EER, TPR at FAR — for pairs and IJB alike
``models``               :func:`load_model` (ONNX / state dict + backbone / trusted TorchScript)
``embedding``            :func:`embed_batch`, :func:`embed_images` — the embedding-helper contract
``verification_sets``    the ``.bin`` sets and LFW ``pairs.txt``: :func:`evaluate_bin`, :func:`find_bins`, ...
``ijb``                  IJB-B/C (subpackage: release, alignment, features, templates, identification)
``retrieval``            Recall@K, MAP@R, R-precision (faiss)
``all_pairs``            all-to-all 1:1: exact streamed ROC of all N(N-1)/2 pairs, TPR at FAR down to 1e-6
``plots``, ``report``    figures, ``report.md`` / ``results.json``
``statistics``           over seeds: :func:`mean_interval`, :func:`paired_difference`, :func:`describe_difference`
``fairness``             per-group accuracy, SER, one global FMR threshold: :func:`evaluate_groups`; RFW / BFW readers
``quality``              error-versus-discard curves, pAUC: :func:`error_vs_discard`; feature-norm / file qualities
``tinyface``             TinyFace closed-set rank-1/5/20: :func:`evaluate_tinyface`, :func:`tinyface_cmc`
``runner``               deprecated shim of ``models`` + ``embedding`` + ``verification_sets``
=======================  ==================================================================================

Conventions of the evaluation API:

==================  ==========================================================================================
``n_folds``         number of verification folds (CLI flag ``--folds``)
``far_targets``     false-accept rates a ROC / the k-fold VAL is read at (pairs and IJB 1:1); 1:N reads
                    ``fpir_targets``, false-positive *identification* rates — a different quantity
``progress``        ``bool``; ``True`` draws :func:`massface._progress.progress_bar` on stderr (default off)
``image_size``      ``(H, W)``, or an int for a square
embeddings          host numpy ``(N, D)``: float32 features (``embed_batch``, ``extract_ijb_features``),
                    float64 L2-normalised verification embeddings (``embed_images``: insightface's float64,
                    what keeps its numbers bit-exact); ``batch_size=64``, ``device=None`` everywhere
==================  ==========================================================================================
"""

from massface._lazy import lazy_exports

_EXPORTS = {
    "PairEvaluation": "verification",
    "evaluate_pairs": "verification",
    "evaluate_distances": "verification",
    "pair_distances": "verification",
    "roc_curve": "roc",
    "roc_from_distances": "roc",
    "auc": "roc",
    "eer_from_roc": "roc",
    "tpr_at_fpr": "roc",
    "pool_templates": "ijb",
    "verify_templates": "ijb",
    "score_template_pairs": "ijb",
    "identify": "ijb",
    "read_ijb": "ijb",
    "extract_ijb_features": "ijb",
    "retrieval_metrics": "retrieval",
    "all_pairs_roc": "all_pairs",
    "AllPairsROC": "all_pairs",
    "plot_distance_distribution": "plots",
    "plot_distance_distributions": "plots",
    "plot_roc": "plots",
    "plot_triplet_grid": "plots",
    "plot_seed_bands": "plots",
    "plot_grouped_shares": "plots",
    "KNOWN_SETS": "verification_sets",
    "evaluate_bin": "verification_sets",
    "evaluate_bins": "verification_sets",
    "evaluate_lfw_pairs": "verification_sets",
    "evaluate_images": "verification_sets",
    "find_bins": "verification_sets",
    "load_model": "models",
    "is_torchscript": "models",
    "OnnxModel": "models",
    "embed_images": "embedding",
    "embed_batch": "embedding",
    "write_report": "report",
    "mean_interval": "statistics",
    "paired_difference": "statistics",
    "describe_difference": "statistics",
    "format_table": "report",
    "GroupEvaluation": "fairness",
    "GroupedPairs": "fairness",
    "evaluate_groups": "fairness",
    "evaluate_group_distances": "fairness",
    "threshold_at_fmr": "fairness",
    "pair_groups_from_images": "fairness",
    "read_pair_groups": "fairness",
    "read_rfw_pairs": "fairness",
    "read_bfw_pairs": "fairness",
    "format_group_table": "fairness",
    "format_quality_table": "quality",
    "ErrorDiscardCurve": "quality",
    "error_vs_discard": "quality",
    "feature_norms": "quality",
    "bin_feature_norms": "quality",
    "read_quality_scores": "quality",
    "plot_group_roc": "plots",
    "plot_error_vs_discard": "plots",
    "TinyFaceSet": "tinyface",
    "TinyFaceEvaluation": "tinyface",
    "read_tinyface": "tinyface",
    "tinyface_cmc": "tinyface",
    "evaluate_tinyface": "tinyface",
    "format_tinyface": "tinyface",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
