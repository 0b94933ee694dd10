"""The hazard loop (隐患闭环), maintenance work orders, patrols, inspections and public reports:
a library over the kernel and org/ (docs/hazards.md). Pure decisions in their own modules, one
writer module per table family."""
