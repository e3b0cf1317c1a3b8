"""scfront.frontend"""
