"""The sorting guide (垃圾分类指南): what goes where, searched by residents, tuned by committees."""
