"""The twelve drills by name."""
from __future__ import annotations

from .scenarios_es import EsBulkPartial, EsDownConnect, Es429Inject, EsWriteBlock4xx
from .scenarios_misc import CollectorDown, DuplicateDelivery, PostgresRestart, ProjectionVersion
from .scenarios_workers import DbClaimContention, MultiWorkerConvergence, StuckReclaim, WorkerKillMidBatch

SCENARIOS = {s.name: s for s in (
    Es429Inject(), EsWriteBlock4xx(), EsDownConnect(), CollectorDown(), EsBulkPartial(), DbClaimContention(),
    StuckReclaim(), DuplicateDelivery(), ProjectionVersion(), WorkerKillMidBatch(), PostgresRestart(),
    MultiWorkerConvergence(),
)}
