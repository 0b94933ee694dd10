"""Patrol plans, checkpoints, check-ins and double-random inspections (docs/hazards.md)."""

from fastapi import APIRouter

router = APIRouter()
