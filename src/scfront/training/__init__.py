"""scfront.training"""
