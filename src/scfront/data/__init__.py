"""scfront.data"""
