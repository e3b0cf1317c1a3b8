"""scfront.models"""
