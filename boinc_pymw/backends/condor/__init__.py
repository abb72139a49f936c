"""HTCondor back end (``-i condor``): the back end (``backend``), submit
descriptions (``_submit``), the job tracker (``_jobs``), job outcomes
(``_outcome``) and the per-job chunk runner (``_chunk``)."""

from .backend import CondorBackend, CondorJobFailed, encode_item, import_htcondor, prepare_cluster

__all__ = ["CondorBackend", "CondorJobFailed", "import_htcondor", "encode_item", "prepare_cluster"]
