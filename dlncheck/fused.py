"""Placeholder until the fused kernel lands."""


def supports(experiment) -> bool:
    return False


def why_not(experiment) -> str:
    return "not built"


advance = None
