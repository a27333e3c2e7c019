from burgo.cli import main

main()
