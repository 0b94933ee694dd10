"""Maintenance work orders (维保工单) and maintenance records (docs/hazards.md)."""

from fastapi import APIRouter

router = APIRouter()
