"""The contract every mirrorhub process shares: payload models and topic constants.

Services, the bridge and devices import from here and never from each other.
"""
