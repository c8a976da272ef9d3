"""The simulated carrier (SMSC) shipped with the gateway: ``smsbroker smsc-sim`` or in-process."""

from smsc_sim.config import SimConfig
from smsc_sim.faults import Faults
from smsc_sim.outcomes import OUTCOMES, Outcome
from smsc_sim.records import SubmitRecord
from smsc_sim.server import SmscSimulator

__all__ = ["OUTCOMES", "Faults", "Outcome", "SimConfig", "SmscSimulator", "SubmitRecord"]
