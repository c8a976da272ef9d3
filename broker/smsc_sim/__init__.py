"""The simulated carrier (SMSC) shipped with the gateway: ``smsbroker smsc-sim`` or in-process."""

from broker.smsc_sim.config import SimConfig
from broker.smsc_sim.faults import Faults
from broker.smsc_sim.outcomes import OUTCOMES, Outcome
from broker.smsc_sim.records import SubmitRecord
from broker.smsc_sim.server import SmscSimulator

__all__ = ["OUTCOMES", "Faults", "Outcome", "SimConfig", "SmscSimulator", "SubmitRecord"]
