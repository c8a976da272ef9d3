"""(being written)"""

from __future__ import annotations

from api.contract import Endpoints

endpoints = Endpoints("contacts")
