"""scfront.evaluation"""
