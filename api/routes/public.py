"""The public report intake (举报): unauthenticated, rate-limited (docs/hazards.md)."""

from fastapi import APIRouter

router = APIRouter()
