"""Assessment (考核): indicators for any period and any node of the organisation, targets and
rankings, briefings and exports (docs/assessment.md). A library: it imports only the kernel and
org/; the API's routes and the commands call it."""
