"""Code that layerkd copies next to a model it saves (see :mod:`layerkd.models.pooled_save`)."""
