"""Hazards (隐患): the closed loop (docs/hazards.md)."""

from fastapi import APIRouter

router = APIRouter()
