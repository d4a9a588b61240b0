from revlens.cli import main

main()
