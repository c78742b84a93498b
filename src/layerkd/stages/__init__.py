"""Pipeline stages: fine-tune a teacher, fit teacher heads, distil (one or two stages), evaluate.

Each stage validates everything it can (data, models, the teacher/student pair, the recipe)
*before* it creates the output directory, so a bad input leaves nothing half-written."""
