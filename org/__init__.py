"""The organisation of a city's fire supervision: the jurisdiction tree down to the grid, units
(社会单位) and their sites, maintenance companies and their contracts, supervising departments,
and the one scope rule that decides who sees what (docs/organisation.md)."""
