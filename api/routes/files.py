"""Files (photos, PDFs) for hazards, work orders and patrols (docs/hazards.md)."""

from fastapi import APIRouter

router = APIRouter()
