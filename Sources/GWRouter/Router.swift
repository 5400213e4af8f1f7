// Router: see Router.swift
