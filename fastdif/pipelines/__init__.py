"""The build and search pipelines that :mod:`fastdif.api` runs once its parameters are checked."""
